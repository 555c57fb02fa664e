"""shopstream recommender service: personalised recommendations from the activity stream."""

__version__ = "0.1.0"
