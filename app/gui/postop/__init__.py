"""Post-op verification mode: window (layout and the shared review), verification (Detect &
verify and re-verification in the background), seed_edits (add, delete, merge, split),
exclusion (excluded metal, the exclusion brush and its toolbar, the Metal tab),
registration_tab (check image, nudge, the plan's record), seeds_layer, overlays (mask
outlines, the painted region), fusion (registration check image), panels (comparison table,
DVHs, seed and metal lists), actions (toolbar action helper)."""
