"""The Faust worker: a thin adapter that feeds Kafka records to the pure matching engine."""
