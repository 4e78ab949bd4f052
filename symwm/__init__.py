"""symwm: symmetric world models.

Importing the package registers its Gymnasium environments under the ``symwm/`` namespace.
"""

__version__ = "0.1.0"

from symwm import envs as envs  # noqa: E402  (registers the environments)
