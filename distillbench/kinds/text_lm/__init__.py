"""kinds/text_lm"""
