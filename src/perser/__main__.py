"""``python -m perser`` is the ``perser`` command (also under ``torchrun -m perser``)."""

from perser.cli import main

if __name__ == "__main__":
    main()
