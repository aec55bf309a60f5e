"""Run every benchmark."""

from bench import outbox

if __name__ == "__main__":
    outbox.main()
