"""kinds/image_classifier"""
