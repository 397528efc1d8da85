"""CI webhooks: GitHub and GitLab pushes and tags become builds of the configured projects."""
