"""The ground of streamfeat: the domain contract and the settings.

Every wing (connectors, flink_jobs, feature_api, batch, serving) and the CLI import this
package; it imports none of them.
"""
