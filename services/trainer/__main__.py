"""``python -m services.trainer``: the trainer worker, configured from ``DRIFTLOOP_*`` settings."""

from __future__ import annotations

import asyncio
import logging

from services.trainer.config import trainer_config
from services.trainer.worker import TrainerWorker
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(TrainerWorker(settings, trainer_config(settings)).run())


if __name__ == "__main__":
    main()
