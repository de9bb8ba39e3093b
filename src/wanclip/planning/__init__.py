"""What will be rendered: the shots file, the timeline, graph editing by role, the plan. Pure except reading files.

May import: errors, files, media (for keyframe pictures).
"""
