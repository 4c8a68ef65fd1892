"""cvkd: action recognition from compressed video, made small by multi-teacher knowledge distillation."""

from cvkd.errors import CvkdError

__version__ = "0.1.0"
__all__ = ["CvkdError", "__version__"]
