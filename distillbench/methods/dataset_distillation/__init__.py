"""Dataset-distillation methods (kind ``dataset-distillation``, data kind "distilled-set"): each makes a small
training set from the real images and a committee of experts, and trains a fresh student on it alone."""
