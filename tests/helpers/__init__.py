"""What the tests share besides fixtures: the real data in ../shared, tiny runs and their checks, fault injection,
TFLite surgery, a stand-in for the Hugging Face Hub, and the test-only kind of model. Imported by name
(``from tests.helpers.runs import TINY``); the fixtures are in ``conftest.py``."""
