"""SeedPlan domain: CT volumes, structures, seeds, plans, import/export. No Qt, no VTK."""
