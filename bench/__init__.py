"""Benchmarks: ``python -m bench NAME [args]`` runs ``bench.NAME.main(argv)``."""
