"""The inventory service. Products and stock: the write model that never oversells."""
