"""kinds/retrieval"""
