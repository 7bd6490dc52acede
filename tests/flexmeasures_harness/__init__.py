"""A real FlexMeasures 1.0.1 for the connector's tests: its own virtual environment (outside the
clone, reused across runs), a database built by its own migrations, and one FlexMeasures process
per test module driven over stdin/stdout (`driver.FlexMeasures`)."""
