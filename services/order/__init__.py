"""Order service: carts, orders, payments, shipping and after-sales."""
