from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse


@staff_member_required
def run_list(request):
    return HttpResponse("Not built yet.")
