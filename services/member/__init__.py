"""Member service: memberships, points, coupons, wallet and plans."""
