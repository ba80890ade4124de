"""Layer adapters: one per kind of thing drawn, each listening to model events.

Every adapter derives from :class:`app.gui.layers.base.Layer`: it owns its VTK props in one
view, subscribes to the Qt-free model's psygnal signals (weakly held; one failing layer does
not stop the others) and removes props and subscriptions in ``close()``.

=====================  =================================================================
module                 adapters (view)
=====================  =================================================================
``ct_image``           CTSliceLayer (2-D), CTPlanesLayer and BoneSurfaceLayer (3-D)
``structures``         StructureOutlineLayer (2-D), StructureSurfaceLayer (3-D + legend)
``crosshair``          CrosshairLayer (2-D)
``annotations``        SliceAnnotationsLayer, ScaleBarLayer, HUColourBarLayer (2-D),
                       PositionTextLayer (3-D)
``needles`` (next)     needle tracks from the plan document, 2-D and 3-D
``seeds`` (next)       seeds from the plan document, 2-D and 3-D
``isodoses`` (next)    isodose lines / surfaces; waits for ``DoseEngineWarmUp.when_ready``
=====================  =================================================================

A view builds its layers in its constructor and closes them in ``finalize()``; new kinds of
things drawn are new modules here, not new code in the views.
"""
