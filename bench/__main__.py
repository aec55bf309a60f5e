"""Run every benchmark."""

from bench import auth, checkout, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    checkout.main()
