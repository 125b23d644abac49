"""kinds/text_to_image"""
