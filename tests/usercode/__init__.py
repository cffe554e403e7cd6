"""User code for tests/test_usercode.py: what a practitioner brings (a model, data loaders, a
loss, metrics, preprocessing, an augmentation, a callback), named in configs by reference."""
