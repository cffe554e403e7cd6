"""``python -m nntune`` (also what ``torchrun -m nntune`` runs)."""

from nntune.cli import main

if __name__ == "__main__":
    main()
