"""The paper's argument reproduced: figures and tables recomputed here."""
