"""Methods, one file per method, grouped by family.

Importing a method's module registers it; `distillbench.plugins` lists which module registers
which name, so a lookup imports only the method asked for.
"""
