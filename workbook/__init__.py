"""The model spec, company data, the template layout and its build."""
