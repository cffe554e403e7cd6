"""Write mnist1d_shifted.npz, the small target set of examples/finetune.yaml.

MNIST-1D signals (Greydanus 2020, the ``mnist1d`` package) of a shifted domain: drawn with
another seed than the standard set that examples/mnist1d.yaml trains on, with twice its scale
and shear variation and 1.6-2× its noise. The same 10 classes, few labels: 1,500 signals, 150
per class, 500 for training ("x", "y") and 1,000 for testing ("x_test", "y_test").
Deterministic: running it again writes the same file.

    .venv/bin/python examples/data/make_mnist1d_shifted.py [OUT.npz]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

args = get_dataset_args()
args.seed = 7  # the standard set uses 42: none of these signals is in it
args.num_samples = 1500
args.train_split = 1 / 3
args.scale_coeff = 0.8  # standard: 0.4
args.shear_scale = 1.5  # standard: 0.75
args.corr_noise_scale = 0.4  # standard: 0.25
args.iid_noise_scale = 0.04  # standard: 0.02
data = make_dataset(args)
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("mnist1d_shifted.npz")
np.savez_compressed(
    out,
    x=data["x"].astype(np.float32),
    y=data["y"].astype(np.int64),
    x_test=data["x_test"].astype(np.float32),
    y_test=data["y_test"].astype(np.int64),
)
print(f"{out}: {len(data['y'])} training and {len(data['y_test'])} test signals")
