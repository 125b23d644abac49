"""kinds/dataset_distillation"""
