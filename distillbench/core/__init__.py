"""The modality-free core: recipe, kind protocol, registry, plan, runner, train loop, store, provenance."""
