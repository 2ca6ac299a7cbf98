"""What MLflow clients log outside the registry proper: experiments, runs and logged models (lineage records
kept as MLflow's JSON) and the manifest of files uploaded through the artifact proxy. Every write audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from services.registry.adapters.db import reading, writing
from services.registry.adapters.store_base import StoreBase, utc_now
from services.registry.adapters.tables import mlflow_artifacts, mlflow_records
from services.registry.domain.auth import Principal
from shared.artifacts import StoredArtifact

_NEXT = "0"  # the character after "/": paths under "a/b/" sort between "a/b/" and "a/b0"


class MlflowStore(StoreBase):
    """MLflow experiments, runs, logged models and artifact files."""

    def mlflow_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(mlflow_records.c.body).where(
                    mlflow_records.c.kind == kind, mlflow_records.c.id == record_id
                )
            ).first()
        return None if row is None else dict(row.body)

    def mlflow_record_named(self, kind: str, name: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(mlflow_records.c.body)
                .where(mlflow_records.c.kind == kind, mlflow_records.c.name == name)
                .limit(1)
            ).first()
        return None if row is None else dict(row.body)

    def mlflow_records(self, kind: str, limit: int = 1000) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(mlflow_records.c.body)
                .where(mlflow_records.c.kind == kind)
                .order_by(mlflow_records.c.created_at)
                .limit(limit)
            ).all()
        return [dict(r.body) for r in rows]

    def save_mlflow_record(
        self, kind: str, record_id: str, name: str, body: dict[str, Any], actor: Principal, action: str
    ) -> dict[str, Any]:
        """Insert or replace a record, with an audit entry ``mlflow.<kind>.<action>``."""
        with writing(self.engine) as conn:
            found = conn.execute(
                select(mlflow_records.c.body).where(
                    mlflow_records.c.kind == kind, mlflow_records.c.id == record_id
                )
            ).first()
            if found is None:
                conn.execute(
                    mlflow_records.insert().values(
                        kind=kind, id=record_id, name=name, body=body, created_at=utc_now()
                    )
                )
            else:
                conn.execute(
                    update(mlflow_records)
                    .where(mlflow_records.c.kind == kind, mlflow_records.c.id == record_id)
                    .values(name=name, body=body)
                )
            self._audit(
                conn,
                actor,
                f"mlflow.{kind}.{action}",
                None,
                f"{kind}/{record_id}",
                found and found.body,
                body,
            )
        return body

    def record_mlflow_artifact(self, path: str, stored: StoredArtifact, actor: Principal) -> None:
        """Remember where the file uploaded at ``path`` is and what it hashed to (a re-upload replaces it)."""
        values = {"uri": stored.uri, "sha256": stored.sha256, "size": stored.size, "created_at": utc_now()}
        with writing(self.engine) as conn:
            found = conn.execute(
                select(mlflow_artifacts.c.uri).where(mlflow_artifacts.c.path == path)
            ).first()
            if found is None:
                conn.execute(mlflow_artifacts.insert().values(path=path, **values))
            else:
                conn.execute(update(mlflow_artifacts).where(mlflow_artifacts.c.path == path).values(**values))
            self._audit(
                conn,
                actor,
                "mlflow.artifact.put",
                None,
                path,
                None,
                {"uri": stored.uri, "sha256": stored.sha256, "size": stored.size},
            )

    def mlflow_artifact(self, path: str) -> Any:
        """The row of the file uploaded at ``path`` (uri, sha256, size), or None."""
        with reading(self.engine) as conn:
            return conn.execute(select(mlflow_artifacts).where(mlflow_artifacts.c.path == path)).first()

    def mlflow_artifacts_under(self, prefix: str) -> list[Any]:
        """Every file uploaded under the folder ``prefix``, by path (one indexed range read)."""
        low = f"{prefix}/" if prefix else ""
        query = select(mlflow_artifacts).order_by(mlflow_artifacts.c.path).limit(100_000)
        if prefix:
            query = query.where(mlflow_artifacts.c.path >= low, mlflow_artifacts.c.path < f"{prefix}{_NEXT}")
        with reading(self.engine) as conn:
            return list(conn.execute(query).all())

    def delete_mlflow_artifacts(self, prefix: str, actor: Principal) -> int:
        """Forget the file ``prefix`` or every file under it (the stored bytes stay: versions may use them)."""
        with writing(self.engine) as conn:
            condition = (mlflow_artifacts.c.path == prefix) | (
                (mlflow_artifacts.c.path >= f"{prefix}/") & (mlflow_artifacts.c.path < f"{prefix}{_NEXT}")
            )
            deleted = conn.execute(mlflow_artifacts.delete().where(condition)).rowcount
            self._audit(conn, actor, "mlflow.artifact.delete", None, prefix, {"files": deleted}, None)
        return int(deleted)
