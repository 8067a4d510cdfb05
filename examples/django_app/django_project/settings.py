SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
INSTALLED_APPS = ["myapp"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "django_project.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
