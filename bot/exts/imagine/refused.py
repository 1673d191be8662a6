"""Why pictures cannot be drawn, from any step of asking for them (the prompt, the people, a group's photo)."""


class Refused(Exception):
    """Said to the member as "I cannot draw that: ..."."""
