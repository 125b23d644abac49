"""kinds/vlm"""
