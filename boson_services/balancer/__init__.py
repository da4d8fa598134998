"""The balancer: dispatch under live load (docs/design.md#balancing).

Holds placed work as unacknowledged deliveries (a crash hands it back to
RabbitMQ) and forwards each task to its node's queue only as that node has
credit; re-picks with power-of-two choices when the placed node is hot, gone
or long busy; moves held work off hot nodes when the cluster is imbalanced;
drains the queue of a node the monitor declares down onto the live ones;
parks and re-publishes work held close to the broker's consumer timeout.
"""
