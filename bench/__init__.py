"""Side-by-side benchmarks of Letterbox and Dovecot (run bench/run.py)."""
