"""SeedPlan numerics: TG-43 sources and dose engines, DVH and plan metrics. No Qt, no VTK."""
