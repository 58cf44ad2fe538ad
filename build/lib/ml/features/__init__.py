"""The feature store: Feast build and materialisation, online reads, the feature layout.

``layout`` fixes the order of the model's customer features (the ``stage_one_vector``);
``store`` builds the Feast sources from the warehouse marts, applies the repo and materialises the
online store (``python -m ml.features``); ``online`` reads one customer; ``snapshot`` reads a whole
snapshot column-wise for batch scoring; ``pairs`` turns customer features into customer x product rows.
"""
