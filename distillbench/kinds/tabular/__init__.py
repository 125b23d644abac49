"""kinds/tabular"""
