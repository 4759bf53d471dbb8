Attribute VB_Name = "ER_Refresh"
Option Explicit

' The Refresh button on the cover runs this macro. It calls the model's refresh entry point
' (addin.refresh.main) in Python through xlwings. With "Use UDF Server" set on the xlwings.conf
' sheet, RunPython reuses the Python process that already serves the worksheet functions.

Sub RefreshModel()
    RunPython "import addin.refresh; addin.refresh.main()"
End Sub
