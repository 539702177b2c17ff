"""Live updates: a WebSocket hub where browsers follow the topics they may see.

Modules register who may follow a topic prefix (`register_topic`), push messages directly
(`publish`, e.g. positions, droppable under backpressure) or map committed bus events to topics
(`route`). Every topic numbers its messages; a reconnecting client resumes from its last number.
"""

from civic.kernel.realtime.hub import Hub, Message, TopicError, TopicRule, realtime_of

__all__ = ["Hub", "Message", "TopicError", "TopicRule", "realtime_of"]
