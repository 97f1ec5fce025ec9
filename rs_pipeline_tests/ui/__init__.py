"""End-to-end tests of the Dagster UI in a real (headless) browser."""
