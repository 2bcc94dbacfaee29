"""The release number: a leaf module, so any module can name it without importing the package
(whose __init__ reaches the API, and through it the whole pipeline)."""
__version__ = "0.1.0"
