"""Post-op verification mode: window (the post-op CT, seeds, review), seeds_layer, fusion
(registration check image), panels (comparison table, DVHs)."""
