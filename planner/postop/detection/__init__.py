"""Seed detection on a post-op CT (:func:`planner.postop.detection.detect.detect_seeds`): the
candidates on thin slices (by HU) and on thick slices (by shape), their classification and the
clusters split, the seed image model that places the seeds, and the steps that find the seeds
the components missed. Start at :mod:`planner.postop.detection.detect`."""
