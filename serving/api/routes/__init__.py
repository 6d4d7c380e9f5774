"""One router per resource; each route parses, calls the engine, formats."""
