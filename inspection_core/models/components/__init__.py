"""Parts that several detector families share: the k-center coreset, the
nearest-neighbour search, the anomaly map's smoothing, the DCGAN blocks, the
reconstruction residual, the adversarial training and the synthetic defects.
The torch-free ones (``gan_params``, ``backbone_names``) serve the checks
that run before any model is built."""
