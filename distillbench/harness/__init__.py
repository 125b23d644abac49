"""The harness: recipe, registry, plan, runner, train loop, store, provenance, CLI."""
