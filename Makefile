# Thin wrappers: each target is one command documented in the README.
.PHONY: demo test bench soak lint broker-up broker-down dashboard containers images

demo:          ## start Kafka and the services, push sample events, show the results
	scripts/demo.sh

test:          ## lint, type-check and run every test layer on a real broker
	scripts/test.sh

bench:         ## bus benchmark: shopstream on both Kafka clients beside raw loops and Quix Streams
	scripts/bootstrap.sh && uv run --frozen python bench/bus_bench.py

soak:          ## fault suite with 3x the inputs and kills, and scale-out with the real sentiment model
	scripts/bootstrap.sh && FAULT_SCALE=3 FAULT_PROFILES=echo,echo-aiokafka,sentiment,describer,responder,recommender,recommender-aiokafka SCALE_PROFILES=echo,sentiment uv run --frozen pytest tests/integration/test_faults.py tests/integration/test_scale_out.py

lint:          ## ruff and mypy --strict only
	uv run --frozen ruff check . && uv run --frozen mypy shared/src services/*/src bench

containers:    ## podman + local stand-ins, the four images, the compose stack end to end, then down
	scripts/bootstrap.sh && scripts/compose_check.sh

images:        ## the four service images only (prints build time and size of each)
	scripts/bootstrap.sh && scripts/containers.sh && scripts/images.sh

broker-up:     ## start the local Kafka broker on 127.0.0.1:9092
	uv run --frozen shopstream broker up

broker-down:   ## stop it
	uv run --frozen shopstream broker down

dashboard:     ## rewrite the Grafana dashboard JSON (after adding a service to the script)
	uv run --frozen python scripts/grafana_dashboard.py
