"""The job queue: RQ on Redis, through django-rq. The only package that imports rq or django_rq.

``port`` is what the services, selectors and the dashboard ask of the queue (enqueue a job
under an id, once per period, count workers and jobs, django-rq's pages); ``worker`` is the
process that works the queues and lives through a Redis restart. Everything else in the
app speaks of jobs by dotted path and id, never of rq's classes.
"""
