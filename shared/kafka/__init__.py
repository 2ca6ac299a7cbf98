"""The one Kafka adapter: every client, producer, admin call and topic follower is built here."""
