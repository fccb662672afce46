"""Settings split: base (shared), local (laptop, embedded services), test, production."""
