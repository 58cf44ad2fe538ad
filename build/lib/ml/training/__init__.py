"""Training the propensity model: point-in-time training sets, the model, its registry.

``dataset`` reads labels and features, ``training_set`` samples whole customers and builds the
pair rows, ``validation`` ranks calibration cut-offs for early stopping, ``model`` is the LightGBM +
isotonic model, ``train`` the nightly fit (``python -m ml.training.train``) and ``registry`` the
versioned model store (``python -m ml.training.registry``).
"""
