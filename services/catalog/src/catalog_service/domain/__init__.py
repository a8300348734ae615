"""Pure rules of the read model: how events merge into product documents."""
